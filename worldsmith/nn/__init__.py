"""Layers shared by the model families, below all of them: import from the modules.

* ``rope``: 3D rotary position embedding over (t, h, w) token positions;
* ``embeddings``: sinusoidal features, the 3D sinusoidal position embedding, a factorized learnable one;
* ``modulation``: AdaLN(-LoRA) modulation of normalised activations by a conditioning embedding.
"""
