"""mucode.training"""
