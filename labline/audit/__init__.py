"""Audits of a trained model: slices, group disparities, the model card."""
