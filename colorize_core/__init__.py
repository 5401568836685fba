"""colorize_core: the pure library of the colorization system (Zhang, Isola & Efros, ECCV 2016).

Numpy, torch, scikit-learn, Pillow and pyarrow only: no orchestration, tracking or storage client.
"""
