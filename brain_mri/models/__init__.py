"""The two models (VGG16 classifier, U-Net), their losses and metrics, and safe loading."""
