"""meshfilter.lua"""
