"""mucode.server"""
