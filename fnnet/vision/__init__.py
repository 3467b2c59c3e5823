"""Vision tools: boxes, IoU, non-max suppression, anchors, YOLO targets and loss,
detection metrics; style costs, ConvNet visualisation.

Imports: fnnet.functional, fnnet.nn (and jax, numpy).
"""
