"""Model sizes against published parameter counts (built, never run forward at full size)."""
from __future__ import annotations

import pytest

import kitpose


def n_params(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("width, published", [(32, 28.5e6), (48, 63.6e6)])
def test_hrnet_with_17_joint_head_matches_published_size(width, published):
    # HRNet paper, Table 1 (COCO): W32 28.5 M, W48 63.6 M parameters
    backbone = kitpose.build("backbone", "hrnet", width=width, stages=4)
    head = kitpose.build("head", "heatmap", in_channels=backbone.out_channels, joints=17)
    assert backbone.out_channels == width
    assert abs(n_params(backbone, head) - published) < 0.05e6


@pytest.mark.parametrize("depth, expected", [
    # torchvision's resnet18/50/101 without the 1000-class fc layer
    (18, 11_689_512 - 513_000), (50, 25_557_032 - 2_049_000), (101, 44_549_160 - 2_049_000)])
def test_resnet_matches_the_reference_layout(depth, expected):
    assert n_params(kitpose.build("backbone", "resnet", depth=depth)) == expected


def test_simple_baseline_resnet50_matches_published_size():
    # SimpleBaseline (Xiao et al. 2018), ResNet-50 with 3 deconvolutions, COCO: 34.0 M
    backbone = kitpose.build("backbone", "resnet", depth=50)
    head = kitpose.build("head", "heatmap", in_channels=backbone.out_channels, joints=17,
                         deconv_layers=3)
    assert abs(n_params(backbone, head) - 34.0e6) < 0.05e6


def test_cpu_hrnet_is_small_and_fewer_blocks_make_it_smaller():
    small = kitpose.build("backbone", "hrnet", variant="small")
    full = kitpose.build("backbone", "hrnet")
    assert small.out_channels == 16
    assert small.stage_modules == [1, 1, 1, 1] and full.stage_modules == [1, 1, 4, 3]
    assert n_params(small) < 0.06 * n_params(full)
    thinner = kitpose.build("backbone", "hrnet", variant="small", blocks=1)
    assert n_params(thinner) < n_params(small)
    # a parameter given explicitly overrides the variant
    assert kitpose.build("backbone", "hrnet", variant="small", width=24).out_channels == 24


def test_hrnet_stages_add_branches():
    sizes = [n_params(kitpose.build("backbone", "hrnet", variant="small", stages=s)) for s in (1, 2, 3, 4)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_reproduction_hourglass_size_grows_with_stacks_and_width():
    four = n_params(kitpose.build("backbone", "hourglass", joints=18, stacks=4, width=128))
    two = n_params(kitpose.build("backbone", "hourglass", joints=18, stacks=2, width=128))
    wide = n_params(kitpose.build("backbone", "hourglass", joints=18, stacks=2, width=256))
    assert two < four and two < wide
    # the stem is shared; each further stack adds the same hourglass + merge layers
    three = n_params(kitpose.build("backbone", "hourglass", joints=18, stacks=3, width=128))
    assert four - three == three - two


def test_hourglass_stem_channels_shrink_only_the_stem():
    paper = kitpose.build("backbone", "hourglass", joints=16, stacks=2, width=32, depth=3)
    narrow = kitpose.build("backbone", "hourglass", joints=16, stacks=2, width=32, depth=3, stem_channels=32)
    assert n_params(narrow.stem) < n_params(paper.stem) / 4
    assert n_params(narrow) - n_params(narrow.stem) == n_params(paper) - n_params(paper.stem)
