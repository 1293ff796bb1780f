"""Synthetic people: anny bodies (body), random views (scene), EGL rendering (render), backgrounds, generate."""
