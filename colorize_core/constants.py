"""Colour-science and normalisation constants, named once for the whole project.

The values follow scikit-image (which the reference implementation of Zhang et al. uses), so that
our Lab matches theirs to float precision.
"""

import numpy as np

# CIE XYZ of the D65 white point, 2-degree observer (scikit-image's "D65", "2").
D65_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# Linear sRGB -> XYZ (D65), as in scikit-image's `xyz_from_rgb`.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)

# sRGB companding (IEC 61966-2-1).
SRGB_DECODE_THRESHOLD = 0.04045  # on the encoded value
SRGB_ENCODE_THRESHOLD = 0.0031308  # on the linear value
SRGB_GAMMA = 2.4
SRGB_LINEAR_SLOPE = 12.92
SRGB_OFFSET = 0.055

# CIE Lab companding f(t) = t^(1/3) above EPSILON, linear below (scikit-image's constants).
LAB_EPSILON = 0.008856
LAB_KAPPA_SLOPE = 7.787
LAB_OFFSET = 16.0 / 116.0
LAB_INV_THRESHOLD = 0.2068966  # f(LAB_EPSILON), the switch point of the inverse

# Network normalisation of the reference ECCV16 model: L_in = (L - L_CENT) / L_NORM, ab = AB_NORM * out.
L_CENT = 50.0
L_NORM = 100.0
AB_NORM = 110.0

# The ab plane is handled on [-AB_RANGE, AB_RANGE): all sRGB colours have |a|, |b| < 110.
AB_RANGE = 128

# Compact storage of Lab in shards: L as uint8 = round(L * L_STORE_SCALE), ab as int8 = round(ab).
L_STORE_SCALE = 255.0 / 100.0
