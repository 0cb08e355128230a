"""Conditioning encoders: text (MiniLM), and later actions, camera poses and views."""
