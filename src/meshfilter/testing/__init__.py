"""Test support, not product code: what meshfilter's own tests and the pytest plugin use.

Nothing in the product (``meshfilter.*`` outside this package and ``meshfilter.pytest_plugin``)
imports from here. Its extra dependencies come with ``pip install 'meshfilter[testing]'``.
"""
