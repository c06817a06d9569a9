"""Data: dataset layouts and labels, the demo generator, skin tone, image features, splits."""
