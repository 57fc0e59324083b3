"""jurisdiction"""
