"""The diffusion decoder: DV tokens -> continuous-tokenizer latents -> frames (Cosmos, Sec. 5.2)."""
