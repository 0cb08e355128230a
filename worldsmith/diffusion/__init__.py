"""Diffusion world model (Cosmos design): latent DiT, EDM preconditioning and loss, samplers, generation.

Rooms: config.py (configs, PRESETS), model.py (DiffusionWorldModel), dit.py (the backbone), condition.py and
embedders.py (what the backbone is conditioned on, and its slot for extra conditions), edm.py (preconditioning,
EDM loss, noise schedules), samplers.py, losses.py, data.py, train.py, generate.py, cli.py.
"""
