"""Camera geometry: camera tracks, pose file formats, SLERP transitions and Plücker rays."""

from .cameras import Cameras, denormalize_intrinsics, invert_pose, look_at, normalize_intrinsics, opengl_to_opencv
from .plucker import camera_directions, plucker_rays, plucker_rays_latent
from .pose_io import KNOWN_FORMATS, CameraTrack, detect_format, load_camera_track, load_cameras, save_cameras
from .slerp import interpolate_cameras, quaternion_slerp, slerp_poses, transition_times
from .wan_camera import wan_camera_embedding, wan_camera_track

__all__ = [
    "CameraTrack", "Cameras", "KNOWN_FORMATS", "detect_format", "load_camera_track", "camera_directions", "denormalize_intrinsics", "interpolate_cameras",
    "invert_pose", "load_cameras", "look_at", "normalize_intrinsics", "opengl_to_opencv", "plucker_rays",
    "plucker_rays_latent", "quaternion_slerp", "save_cameras", "slerp_poses", "transition_times",
    "wan_camera_embedding", "wan_camera_track",
]
from .camera_paths import PRESETS as CAMERA_PATH_PRESETS, camera_path, fov_to_intrinsics, frame_times, keyframe_path
__all__ += ["CAMERA_PATH_PRESETS", "camera_path", "fov_to_intrinsics", "frame_times", "keyframe_path"]
