"""face_verification: the baselines recomputed with NumPy and scikit-learn, bad configs
fail early, and a reduced run of the triplet ConvNet gives consistent scores."""
import os
import sys
import warnings

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from experiments import face_verification as fv  # noqa: E402


def numpy_scores(test, features=None, distances=None):
    """One-shot accuracy by a NumPy nearest-neighbour loop and sklearn's AUC over all pairs
    (Euclidean distances of the features, or the held-out images' ``distances``)."""
    skm = pytest.importorskip("sklearn.metrics")
    if distances is None:
        t = features(test)
        distances = np.array([[np.linalg.norm(a - b) for b in t] for a in t])
    correct = 0
    for i in range(90):
        probe = 10 * (i // 9) + 1 + i % 9
        correct += int(np.argmin([distances[probe, 10 * g] for g in range(10)]) == i // 9)
    ids = np.repeat(np.arange(10), 10)
    scores, same = [], []
    for i in range(100):
        for j in range(i + 1, 100):
            scores.append(-distances[i, j])
            same.append(ids[i] == ids[j])
    return correct / 90, skm.roc_auc_score(same, scores)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="expected steps > 0, got 0"):
        fv.Config(steps=0)
    with pytest.raises(ValueError, match=r"steps.*a multiple of eval_every \(150\)"):
        fv.Config(steps=1000)
    with pytest.raises(ValueError, match="embedding_dim.*>= 30"):
        fv.Config(embedding_dim=16)
    with pytest.raises(ValueError, match="downscale.*a divisor of both 112 and 92"):
        fv.Config(downscale=3)
    with pytest.raises(ValueError, match="fisher_pca_components.*<= 270"):
        fv.Config(fisher_pca_components=280)
    with pytest.raises(ValueError, match="fisher_pca_components.*<= 180"):
        fv.Config(evaluation="validation", fisher_pca_components=200)
    with pytest.raises(ValueError, match="loss.*'triplet', 'margin_softmax', 'both'"):
        fv.Config(loss="arcface")
    with pytest.raises(ValueError, match="evaluation.*'test', 'validation'"):
        fv.Config(evaluation="train")
    with pytest.raises(ValueError, match="expected scale > 0, got 0"):
        fv.Config(scale=0.0)
    with pytest.raises(ValueError, match=r"dropout.*\[0, 1\)"):
        fv.Config(dropout=1.0)
    with pytest.raises(ValueError, match="lbp_method one of 'uniform', 'nri_uniform'; got 'default'"):
        fv.Config(lbp_method="default")
    with pytest.raises(ValueError, match=r"lbp_grid \(rows, columns\) of cells, at most 56 x 46, got \(60, 4\)"):
        fv.Config(lbp_downscale=2, lbp_grid=(60, 4))
    with pytest.raises(ValueError, match="expected lbp_radius > 0, got 0"):
        fv.Config(lbp_radius=0.0)
    with pytest.raises(ValueError, match="fisher_lbp_pca_components.*<= 180"):
        fv.Config(evaluation="validation", fisher_lbp_pca_components=181)
    with pytest.raises(ValueError, match="every element of descriptor_weights >= 0"):
        fv.Config(descriptor_weights=(1.0, -1.0, 0.0))


def test_validation_split_never_touches_the_test_subjects():
    faces = np.arange(40 * 10, dtype=np.float32).reshape(40, 10, 1, 1, 1)   # image id = 10 * subject + photo
    for evaluation, n_train in (("test", 30), ("validation", 20)):
        s = fv.split(faces, evaluation)
        ids = s["x_train"].ravel()
        assert ids.min() == 0 and ids.max() == 10 * n_train - 1 and len(ids) == 10 * n_train
        np.testing.assert_array_equal(s["x_test"].ravel(), np.arange(10 * n_train, 10 * n_train + 100))
        np.testing.assert_array_equal(s["gallery"].ravel(), np.arange(10 * n_train, 10 * n_train + 100, 10))
        assert len(s["probes"]) == 90 and not set(s["probes"].ravel()) & set(s["gallery"].ravel())
    assert fv.split(faces, "validation")["x_test"].max() < 300                # 31-40 unseen in validation


def test_reduced_run_against_independent_baselines():
    skd = pytest.importorskip("sklearn.decomposition")
    # the default's pieces (cosine classifier + triplet, dropout, affine warps, mirror), smaller
    config = fv.Config(num_seeds=2, channels=(8,), embedding_dim=32, steps=4, eval_every=4, batch_size=60,
                       erase_probability=0.5, pca_components=20, fisher_pca_components=20, lbp_downscale=2,
                       lbp_cell_weights="none", lbp_method="nri_uniform", lbp_grid=(4, 4))
    result = fv.run(config)

    # the baselines, recomputed on the same images with NumPy loops, sklearn's PCA and AUC
    faces = fv.load_faces(config.downscale).reshape(40, 10, -1).astype(np.float64)
    train, test = faces[:30].reshape(300, -1), faces[30:]
    flat_test = test.reshape(100, -1)
    pca = skd.PCA(20, svd_solver="full").fit(train)
    for name, features in [("raw_pixels", lambda v: v), ("eigenfaces", pca.transform)]:
        one_shot, auc = numpy_scores(flat_test, features)
        assert result["baselines"][name]["one_shot_accuracy"] == pytest.approx(one_shot, abs=1e-6)
        assert result["baselines"][name]["roc_auc"] == pytest.approx(auc, abs=1e-4)
    # the raw-pixel baseline of the issue (0.833 one-shot at full size) holds at 28 x 23 too
    assert result["baselines"]["raw_pixels"]["one_shot_accuracy"] == pytest.approx(0.8333, abs=1e-3)
    assert result["baselines"]["fisherfaces"]["roc_auc"] > 0.9

    conv = result["convnet"]
    per = conv["per_seed"]
    assert [r["seed"] for r in per] == [0, 1] and result["image_shape"] == [28, 23]
    assert conv["one_shot_accuracy"]["mean"] == pytest.approx(np.mean([r["one_shot_accuracy"] for r in per]))
    # the metrics evaluated inside fit_population on the last step (without the test-time
    # mirror) equal the row computed after it without the mirror
    last = result["per_member_history"][-1]
    plain = result["convnet_without_mirror"]
    assert np.mean(last["test_one_shot_accuracy"]) == pytest.approx(plain["one_shot_accuracy"]["mean"], abs=1e-6)
    assert np.mean(last["test_roc_auc"]) == pytest.approx(plain["roc_auc"]["mean"], abs=1e-5)
    assert result["evaluated_subjects"] == [31, 40]
    fused = result["fused_with_fisherfaces"]
    assert fused["one_shot_accuracy"]["mean"] == pytest.approx(np.mean([r["one_shot_accuracy"]
                                                                         for r in fused["per_seed"]]))
    # even four steps give far better than chance (one-shot 0.1, AUC 0.5)
    assert all(r["one_shot_accuracy"] > 0.3 and r["roc_auc"] > 0.7 for r in per)
    curve = result["roc_curves"]["convnet"]
    assert curve["fpr"][0] == 0.0 and curve["tpr"][-1] == 1.0 and np.all(np.diff(curve["tpr"]) >= 0)
    assert len(result["embedding_map"]) == 100
    fused = result["fused"]
    assert fused["one_shot_accuracy"]["mean"] == pytest.approx(np.mean([r["one_shot_accuracy"]
                                                                         for r in fused["per_seed"]]))

    # the LBP row: scikit-image's codes, cell histograms and the chi-square distance by NumPy
    skf = pytest.importorskip("skimage.feature")
    small = fv.load_faces(2)[30:, ..., 0].reshape(100, 56, 46).astype(np.float64)
    hists = []
    for image in small:
        with warnings.catch_warnings():         # scikit-image warns about float images
            warnings.simplefilter("ignore")
            codes = skf.local_binary_pattern(image, 8, 1.0, method="nri_uniform")
        rows, cols = (np.round(np.linspace(0, n, 5)).astype(int) for n in (56, 46))   # the cells' edges
        hists.append(np.concatenate([np.bincount(codes[r0:r1, c0:c1].ravel().astype(int), minlength=59) /
                                     codes[r0:r1, c0:c1].size
                                     for r0, r1 in zip(rows[:-1], rows[1:]) for c0, c1 in zip(cols[:-1], cols[1:])]))
    h = np.stack(hists)
    total = h[:, None] + h[None]
    d = np.where(total > 0, (h[:, None] - h[None]) ** 2 / np.where(total > 0, total, 1), 0).sum(-1)
    one_shot, auc = numpy_scores(None, distances=d)
    # float32 against scikit-image's float64: 59 of the 257,600 codes (neighbours within rounding
    # of their centre) differ, which moves the AUC by 1.5e-4; a wrong cell or code moves it more
    assert result["baselines"]["lbp"]["one_shot_accuracy"] == pytest.approx(one_shot, abs=1.01 / 90)
    assert result["baselines"]["lbp"]["roc_auc"] == pytest.approx(auc, abs=1e-3)
    assert 0.1 <= result["ensemble"]["one_shot_accuracy"] <= 1 and 0.5 <= result["ensemble"]["roc_auc"] <= 1


def test_cosine_classifier_gives_unit_embeddings_and_cosines(rng):
    head = fv.cosine_classifier(3)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    params, state = head.init(jax.random.key(0), x)
    out = np.asarray(head.apply(params, state, x)[0])
    w = np.asarray(params["kernel"], np.float64)
    for n in range(4):
        e = x[n] / np.linalg.norm(x[n])
        np.testing.assert_allclose(out[n, :5], e, atol=1e-6)
        for j in range(3):
            np.testing.assert_allclose(out[n, 5 + j], e @ w[:, j] / np.linalg.norm(w[:, j]), atol=1e-6)


def test_distance_scores_against_a_numpy_loop_and_sklearn(rng):
    """The fused row scores a distance matrix: one-shot by a loop over probes, AUC by sklearn."""
    skm = pytest.importorskip("sklearn.metrics")
    points = rng.normal(size=(100, 3)) + np.repeat(rng.normal(size=(10, 3)), 10, axis=0)
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    ids = np.repeat(np.arange(10), 10)
    correct = total = 0
    for p in range(100):
        if p % 10:
            correct += int(np.argmin([d[p, 10 * g] for g in range(10)]) == p // 10)
            total += 1
    scores = [-d[i, j] for i in range(100) for j in range(i + 1, 100)]
    same = [ids[i] == ids[j] for i in range(100) for j in range(i + 1, 100)]
    one_shot, auc = fv.distance_scores(d, ids)
    assert one_shot == pytest.approx(correct / total) and auc == pytest.approx(skm.roc_auc_score(same, scores), abs=1e-5)
