"""meshfilter.oras"""
