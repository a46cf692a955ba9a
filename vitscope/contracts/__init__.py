"""The torch-free contracts every tier may import: kinds, params, job specs, datasets, archives,
errors, shared settings and the Redis store. Nothing here imports torch, the ViT library or a
service."""
