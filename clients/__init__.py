"""mucode.clients"""
