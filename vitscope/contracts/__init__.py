"""The torch-free contracts every tier may import: kinds, params, job specs, datasets, archives,
errors, the root of the settings tree, the queue's task name and the Redis store. Nothing here
imports torch, the ViT library or a service."""
