"""安全書類 (safety documents, the seed's AZ1–AZ7) as Excel laid out like the printed forms sites know.

Unlike the tabular 帳票 (``server.exports``), a form has a fixed page: title and header blocks in merged
cells, ruled boxes, a print area on A4 or A3 landscape, title rows repeated on every printed page and a
Japanese font. One module per form (``az2.py``, ``az6.py``, …) turns plain data that a service already
scoped by the visibility policy into a workbook; ``layout`` holds the drawing vocabulary they share.
The forms know nothing of who may see what.
"""
