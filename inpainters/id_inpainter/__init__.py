"""ID-Inpainter (Recovery-based Occluded Face Recognition by Identity-guided Inpainting).

Written from the official code (``icaoyu/ID-Inpainter``) with its parameter names, so that
the released checkpoints load unchanged:

* :mod:`.ca` — stage 1, the contextual-attention coarse/fine inpainter (``gen_*.pt``);
* :mod:`.sampler` — the identity "Sampler" Z, an IR-ResNet-50 with a 256-d output;
* :mod:`.fusor` — stage 2, attribute encoder E, AAD-style generator G and the multi-scale
  discriminator D (the Lightning ``.ckpt`` holds ``G.``, ``E.``, ``D.``, ``Z.``);
* :mod:`.backend` — the ``id-inpainter`` inpainter: loading, blend modes, identity source.
"""
