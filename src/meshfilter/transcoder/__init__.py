"""meshfilter.transcoder"""
