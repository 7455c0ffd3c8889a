output "mesh_revision" {
  description = "The mesh's revision after the apply."
  value       = data.interlock_mesh.shop.revision
}
