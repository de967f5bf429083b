"""Event-camera (DVS) input: representations, file I/O, a video-to-events simulator and
the DVS128 Gesture dataset. See ``docs/events.md``.

Frames for the model are float32 ``[T, 2, H, W]`` with channel 0 = ON, channel 1 = OFF.
"""
from .dvs_gesture import DVS128_SENSOR_SIZE, GESTURE_CLASSES, DVSGesture, convert_dvs_gesture, read_gesture_labels
from .readers import read_aedat31, read_events, write_events
from . import representation
from .representation import *  # noqa: F401,F403  (names listed in representation.__all__)
from .simulator import frames_from_video_events, video_to_events

__all__ = [
    *representation.__all__,
    "read_events",
    "write_events",
    "read_aedat31",
    "video_to_events",
    "frames_from_video_events",
    "DVSGesture",
    "GESTURE_CLASSES",
    "DVS128_SENSOR_SIZE",
    "convert_dvs_gesture",
    "read_gesture_labels",
]
