"""ONNX export of the stage denoisers (the folder format it writes is ``runtime/graph_contract.py``)."""
