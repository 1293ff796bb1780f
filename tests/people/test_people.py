"""Person finder (real MediaPipe model on real photos and on the bundled renders) and the pose-scale fit."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rgbd_fusion_core.people.person import LEFT_SHOULDER, NOSE, RIGHT_SHOULDER, Person
from rgbd_fusion_core.people.pose_scale import SURFACE_OFFSET_M, fit_person_translation, pose_reference_depth

DEMO = Path(__file__).resolve().parents[2] / "rgbd_fusion_core" / "demo_frames"


def _mediapipe():
    try:
        import mediapipe  # noqa: F401
    except ImportError as error:
        pytest.skip(f'mediapipe cannot be imported ({error}); install with pip install "mediapipe==0.10.21"')


@pytest.fixture(scope="module")
def finder():
    _mediapipe()
    from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

    return MediaPipeFinder()


def _demo_samples():
    """[(id, rgb (H, W, 3) uint8, true mask (H, W) bool, depth (H, W) metres, K (3, 3))] at 256 px."""
    cv2 = pytest.importorskip("cv2")
    dataset = json.loads((DEMO / "dataset.json").read_text())
    samples = []
    for sample in dataset["samples"]:
        files = sample["files"]["256"]
        rgb = cv2.cvtColor(cv2.imread(str(DEMO / files["rgb"])), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(DEMO / files["mask"]), cv2.IMREAD_UNCHANGED) > 0
        depth = cv2.imread(str(DEMO / files["depth"]), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
        samples.append((sample["id"], rgb, mask, depth, np.array(sample["K"]["256"])))
    return samples


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _check_person(person: Person, shape):
    assert person.mask.shape == shape[:2] and person.mask.dtype == bool
    assert person.keypoints_2d.shape == (33, 3) and person.keypoints_2d.dtype == np.float32
    assert person.keypoints_3d.shape == (33, 3) and np.isfinite(person.keypoints_3d).all()
    assert ((person.keypoints_2d[:, 2] >= 0) & (person.keypoints_2d[:, 2] <= 1)).all()
    assert 0.0 <= person.score <= 1.0


def test_astronaut_photo(finder):
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the astronaut photo")
    rgb = data.astronaut()
    people = finder.find(rgb)
    assert len(people) == 1
    person = people[0]
    _check_person(person, rgb.shape)
    assert person.keypoints_2d[[LEFT_SHOULDER, RIGHT_SHOULDER], 2].min() > 0.5
    x, y = person.keypoints_2d[NOSE, :2].astype(int)
    assert person.mask[y, x] and 150 < x < 300 and 50 < y < 250  # the face
    assert 0.2 < person.mask.mean() < 0.7
    assert person.mask[:250, :60].mean() < 0.05  # the flag on the left is not the person
    # a grey copy, as (H, W) or 3 equal channels, still gives the person
    grey = rgb.mean(axis=2).astype(np.uint8)
    for image in (grey, np.repeat(grey[:, :, None], 3, axis=2)):
        found = finder.find(image)
        assert len(found) == 1 and _iou(found[0].mask, person.mask) > 0.8


def test_demo_frames_mask_and_reference_depth(finder):
    # measured: mask IoU 0.967-0.986, z_ref error 0-17 % (median 2.5 %) on these 6 renders
    errors = []
    for sample_id, rgb, true_mask, depth, K in _demo_samples():
        people = finder.find(rgb)
        assert len(people) == 1, sample_id
        person = people[0]
        _check_person(person, rgb.shape)
        assert _iou(person.mask, true_mask) >= 0.93, sample_id
        z_ref = pose_reference_depth(person.keypoints_2d, person.keypoints_3d, K)
        true = np.median(depth[true_mask])
        errors.append(abs(z_ref - true) / true)
    assert max(errors) < 0.2 and np.median(errors) < 0.1, errors


def test_bad_inputs(finder):
    assert finder.find(np.zeros((480, 640, 3), np.uint8)) == []
    assert finder.find(np.full((480, 640, 3), 200, np.uint8)) == []
    assert finder.find(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)) == []
    assert finder.find(np.zeros((0, 0, 3), np.uint8)) == []
    _, rgb, _, _, _ = _demo_samples()[1]
    for cut in (rgb[:, :128], rgb[:100], rgb[60:, 100:]):  # people cut by the frame edge
        for person in finder.find(cut[:, ::-1]):  # a non-contiguous view too
            _check_person(person, cut.shape)


def test_two_people_side_by_side(finder):
    samples = _demo_samples()
    for a, b in ((0, 1), (4, 5)):
        rgb = np.concatenate([samples[a][1], samples[b][1]], axis=1)
        left = np.concatenate([samples[a][2], np.zeros_like(samples[b][2])], axis=1)
        right = np.concatenate([np.zeros_like(samples[a][2]), samples[b][2]], axis=1)
        people = finder.find(rgb)
        assert len(people) == 2
        assert not (people[0].mask & people[1].mask).any()
        ious = sorted(max(_iou(p.mask, left), _iou(p.mask, right)) for p in people)
        assert ious[0] > 0.9
        assert {_iou(p.mask, left) > 0.9 for p in people} == {True, False}


def test_tracking_drops_a_person_who_left():
    _mediapipe()
    from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

    tracker = MediaPipeFinder(tracking=True, max_people=2)
    _, rgb, true_mask, _, _ = _demo_samples()[1]
    for _ in range(3):
        people = tracker.find(rgb)
        assert len(people) == 1 and _iou(people[0].mask, true_mask) > 0.9
    background = np.full_like(rgb, 90)
    assert tracker.find(background) == []
    # newcomers are searched for every search_every frames: the person is picked up again within that many
    found_again = [len(tracker.find(rgb)) for _ in range(tracker.search_every)]
    assert found_again[-1] == 1 and set(found_again) <= {0, 1}


def test_missing_mediapipe_says_how_to_install(monkeypatch):
    from rgbd_fusion_core.people.mediapipe_finder import MediaPipeFinder

    for name in [m for m in sys.modules if m == "mediapipe" or m.startswith("mediapipe.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match=r'pip install "mediapipe==0\.10\.21"'):
        MediaPipeFinder()


def _project(points, K):
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


@pytest.mark.parametrize("refine", [False, True])
def test_fit_person_translation_recovers_t(refine):
    rng = np.random.default_rng(3)
    K = np.array([[520.0, 0.0, 310.0], [0.0, 480.0, 250.0], [0.0, 0.0, 1.0]])
    body = rng.uniform([-0.3, -0.9, -0.15], [0.3, 0.8, 0.15], (33, 3))
    t_true = np.array([0.4, -0.2, 3.1])
    kp2 = np.concatenate([_project(body + t_true, K), rng.uniform(0.6, 1.0, (33, 1))], axis=1)
    kp2[:10, 2] = 0.1  # unseen keypoints, with wrong positions, must not count
    kp2[:10, :2] += 50.0
    t = fit_person_translation(kp2, body, K, refine=refine)
    np.testing.assert_allclose(t, t_true, atol=1e-6)
    z_ref = pose_reference_depth(kp2, body, K)  # the surface lies in front of the keypoints (joint centres)
    assert z_ref == pytest.approx(np.median(body[10:, 2]) + t_true[2] - SURFACE_OFFSET_M)


def test_fit_person_translation_rejects_too_few_or_implausible():
    K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    body = np.random.default_rng(0).uniform(-0.5, 0.5, (33, 3))
    kp2 = np.concatenate([_project(body + [0, 0, 2.0], K), np.ones((33, 1))], axis=1)
    few = kp2.copy()
    few[3:, 2] = 0.0
    assert fit_person_translation(few, body, K) is None
    assert pose_reference_depth(few, body, K) is None
    far = np.concatenate([_project(body * 0.001 + [0, 0, 2.0], K), np.ones((33, 1))], axis=1)
    assert fit_person_translation(far, body, K) is None  # a full-size body that small is > 30 m away
