"""Data: CamVid, training augmentation, and decoding / checking user images."""
