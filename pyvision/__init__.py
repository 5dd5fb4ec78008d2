"""pyvision: Q-CLIP video quality, EMERT emotion recognition, FER-GCD expression category discovery and
myopia progression prediction. (Skeleton: models and data land in later issues.)"""
