"""Bundle -> Blender subprocess -> PNG / MP4, and the extension zip."""
