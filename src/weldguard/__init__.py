"""weldguard: digital supervision of electric and gas welding (电气焊安全监管)."""

__version__ = "0.1.0"
