"""The hybrid diffusion segmentation model: U-Net, preconditioning, loss, checkpoints.

Import the submodules themselves: this package imports nothing, so that
:mod:`.onnx_graph` (the viewer's first prediction) does not pull in torch.
"""
