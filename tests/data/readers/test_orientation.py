"""Radiological orientation from affines: hand-derived flips and a property over all affines."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcovid.data.readers.orientation import to_radiological

VOLUME = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (x, y, z), every voxel distinct


def test_ras_volume_is_flipped_in_plane():
    # x points to the patient's right and y anterior: columns must run right -> left, so x is
    # reversed; rows must run anterior -> posterior, so y is reversed; z already runs upwards.
    image, spacing = to_radiological(VOLUME, np.diag([0.8, 0.7, 2.5, 1.0]), (0.8, 0.7, 2.5))
    np.testing.assert_array_equal(image, VOLUME[::-1, ::-1, :].transpose(2, 1, 0))
    assert spacing == (2.5, 0.7, 0.8)


def test_lps_volume_is_only_transposed():
    image, spacing = to_radiological(VOLUME, np.diag([-0.8, -0.7, 2.5, 1.0]), (0.8, 0.7, 2.5))
    np.testing.assert_array_equal(image, VOLUME.transpose(2, 1, 0))
    assert spacing == (2.5, 0.7, 0.8)


def test_keep_slice_order_leaves_a_downward_stack_as_stored():
    affine = np.diag([-0.8, -0.7, -2.5, 1.0])  # z runs feet-wards
    image, _ = to_radiological(VOLUME, affine, (0.8, 0.7, 2.5))
    kept, _ = to_radiological(VOLUME, affine, (0.8, 0.7, 2.5), keep_slice_order=True)
    np.testing.assert_array_equal(image, VOLUME[:, :, ::-1].transpose(2, 1, 0))
    np.testing.assert_array_equal(kept, VOLUME.transpose(2, 1, 0))


@settings(max_examples=40, deadline=None)
@given(permutation=st.sampled_from(list(itertools.permutations(range(3)))),
       signs=st.tuples(*[st.sampled_from((-1.0, 1.0))] * 3),
       zooms=st.tuples(*[st.floats(0.3, 5.0)] * 3))
def test_any_axis_aligned_affine_gives_left_posterior_superior_axes(permutation, signs, zooms):
    # voxel axis i points along world axis permutation[i] with sign signs[i] and size zooms[i]
    affine = np.eye(4)
    affine[:3, :3] = 0
    for axis, (world, sign, zoom) in enumerate(zip(permutation, signs, zooms)):
        affine[world, axis] = sign * zoom
    image, spacing = to_radiological(VOLUME, affine, zooms)
    voxel = np.stack(np.unravel_index(image, VOLUME.shape), axis=-1).astype(float)
    world = voxel @ affine[:3, :3].T  # RAS+ coordinates of each (slice, row, column) voxel
    assert (np.diff(world[..., 0], axis=2) < 0).all()  # columns go to patient left (-R)
    assert (np.diff(world[..., 1], axis=1) < 0).all()  # rows go posterior (-A)
    assert (np.diff(world[..., 2], axis=0) > 0).all()  # slices go superior (+S)
    expected_spacing = [zooms[permutation.index(world_axis)] for world_axis in (2, 1, 0)]
    assert spacing == pytest.approx(expected_spacing)
