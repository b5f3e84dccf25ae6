"""Reusable network building blocks in plain torch (torchvision cannot be imported here).

* :mod:`inpainters.layers.resnet`: torchvision-named ResNet-50 (v1.5) trunk with
  ``replace_stride_with_dilation``, and :func:`~inpainters.layers.resnet.load_imagenet_weights`.
* :mod:`inpainters.layers.crops`: differentiable box crops for local discriminators.
"""

from inpainters.layers.resnet import Bottleneck, ResNet50, load_imagenet_weights

__all__ = ["Bottleneck", "ResNet50", "load_imagenet_weights"]
