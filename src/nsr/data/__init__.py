"""Scene parsers (-> SceneData) and input errors."""

from nsr.data.errors import DataError
from nsr.data.idr import load_idr_scene, write_idr_scene
from nsr.data.scene import SceneData

__all__ = ["DataError", "SceneData", "load_idr_scene", "write_idr_scene"]
