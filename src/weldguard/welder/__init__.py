"""welder"""
