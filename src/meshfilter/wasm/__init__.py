"""meshfilter.wasm"""
