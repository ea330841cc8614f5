"""Threat-intelligence and vulnerability applications (``secfoundry intel``; docs/intel.md).

Python API (request/response models in ``schemas``; importing this package stays light)::

    from secfoundry.apps.intel.cwe_map import CweMapper          # map-cwe
    mapper = CweMapper()                                          # or CweMapper(llm="smollm2-135m-instruct")
    mapper.map("... leads to sql injection", cve_id=None)         # -> schemas.CweMapping
    mapper.map_many([schemas.CveInput(id=..., description=...)])  # batches

    from secfoundry.apps.intel.cvss_predict import CvssPredictor, predict_cvss   # predict-cvss
    predict_cvss("Buffer overflow in ...")                        # -> schemas.CvssPrediction

    from secfoundry.apps.intel.batch import resolve_single        # text | CVE id | CVE JSON 5 file -> CveInput

Both engines load the cached fitted model (``fitted.IntelModel.get``; fitted on first use) and the
KB's CWE catalog (``cwe_catalog.CweCatalog.from_kb``); build them once per process and reuse them.
The ``system:`` model backend (``system``) scores any app through the eval harness.
"""
