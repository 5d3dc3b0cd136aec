"""meshfilter.examples"""
