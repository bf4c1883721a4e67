"""The ``synthetic`` dataset: a procedural human pose model (``pose``), its rendering
(``render``) and the dataset that draws samples from them (``dataset``)."""
