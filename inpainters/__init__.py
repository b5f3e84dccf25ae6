"""Inpainter backends. Built-ins are registered here by name and imported on first use;
third-party backends join through the ``recogbench.inpainters`` entry-point group."""

from recogbench.registry import INPAINTERS

INPAINTERS.register("none", "inpainters.baselines:NoInpainter")
INPAINTERS.register("oracle", "inpainters.baselines:OracleInpainter")
INPAINTERS.register("fill", "inpainters.classical:FillInpainter")
INPAINTERS.register("telea", "inpainters.classical:TeleaInpainter")
INPAINTERS.register("navier_stokes", "inpainters.classical:NavierStokesInpainter")
INPAINTERS.register("pconv-gan", "inpainters.pconv_gan:PConvGAN")
INPAINTERS.register("id-inpainter", "inpainters.id_inpainter.backend:IDInpainter")
INPAINTERS.register("ifacenet", "inpainters.ifacenet:IFACENetInpainter")
INPAINTERS.register("unet-gan", "inpainters.unet_gan:UNetGAN")
