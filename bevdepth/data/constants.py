"""Names fixed by nuScenes and by the reference BEVDepth configuration."""

# Camera order used everywhere a tensor has a camera axis (reference `Ncams=6` order).
CAMERAS: tuple[str, ...] = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT",
    "CAM_BACK",
    "CAM_BACK_RIGHT",
)
LIDAR = "LIDAR_TOP"

# Detection classes; a box label is the index in this tuple.
DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)

# Original nuScenes image size.
IMAGE_HEIGHT = 900
IMAGE_WIDTH = 1600
