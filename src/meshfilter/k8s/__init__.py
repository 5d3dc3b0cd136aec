"""meshfilter.k8s"""
