"""Local end-to-end demos on a mesh of real Envoys: the seed's A/B test and its gateway-tagging canary.

``meshfilter demo ab`` / ``meshfilter demo canary``; library: :func:`ab_mesh`, :func:`canary_mesh`,
:class:`LocalMesh`, :func:`run_probes`.
"""

from meshfilter.demo.run import (
    AB_PROBES,
    CANARY_PROBES,
    DEMO_PATH,
    LocalMesh,
    Probe,
    ab_mesh,
    canary_mesh,
    run_probes,
)

__all__ = ["AB_PROBES", "CANARY_PROBES", "DEMO_PATH", "LocalMesh", "Probe", "ab_mesh", "canary_mesh",
           "run_probes"]
