"""Vision tools: boxes, IoU, non-max suppression, anchors, YOLO targets and loss,
the convolutional sliding window, COCO/VOC detection metrics; layer outputs by name,
style costs and the pixel loop of neural style transfer; filters, saliency, Grad-CAM
and occlusion maps; local binary patterns and the chi-square distance.

Imports: fnnet.functional, fnnet.nn, fnnet.optim (the style-transfer loop), jax, numpy.
"""
from fnnet.vision.boxes import *  # noqa: F401,F403
from fnnet.vision.nms import *  # noqa: F401,F403
from fnnet.vision.detection import *  # noqa: F401,F403
from fnnet.vision.evaluation import *  # noqa: F401,F403
from fnnet.vision.features import *  # noqa: F401,F403
from fnnet.vision.explain import *  # noqa: F401,F403
from fnnet.vision.style import *  # noqa: F401,F403
from fnnet.vision.descriptors import *  # noqa: F401,F403
