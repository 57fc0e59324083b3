"""enterprise"""
