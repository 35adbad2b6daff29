"""Camera geometry, pure tensor maths: camera tracks, SLERP transitions, Plücker rays, camera paths, Sim(3)
alignment, structure from motion on frames in memory. Imports only :mod:`syn2seq_core.base` (pose *files* are
:mod:`syn2seq_core.io.poses`)."""

from .cameras import Cameras, denormalize_intrinsics, invert_pose, look_at, normalize_intrinsics, opengl_to_opencv
from .plucker import camera_directions, plucker_rays, plucker_rays_latent
from .slerp import interpolate_cameras, quaternion_slerp, slerp_poses, transition_times
from .wan_camera import wan_camera_embedding, wan_camera_track

__all__ = [
    "Cameras", "camera_directions", "denormalize_intrinsics", "interpolate_cameras",
    "invert_pose", "look_at", "normalize_intrinsics", "opengl_to_opencv", "plucker_rays",
    "plucker_rays_latent", "quaternion_slerp", "slerp_poses", "transition_times",
    "wan_camera_embedding", "wan_camera_track",
]
from .camera_paths import PRESETS as CAMERA_PATH_PRESETS, camera_path, fov_to_intrinsics, frame_times, keyframe_path
__all__ += ["CAMERA_PATH_PRESETS", "camera_path", "fov_to_intrinsics", "frame_times", "keyframe_path"]
