"""Reduced optimizers_digits: two epochs of batch vs mini-batch gradient descent."""
from fnnet.cli import load_experiment


def test_optimizers_digits_reduced(tmp_path):
    exp = load_experiment("optimizers_digits")
    config = exp.Config(epochs=2, batch_learning_rates=(("batch", 0.3), ("minibatch", 0.1)),
                        studies=("batch_size",), stratify=False)
    result = exp.run(config)
    assert result["n_train"] + result["n_dev"] + result["n_test"] == 1797
    assert set(result["runs"]) == {"batch_size/batch", "batch_size/minibatch"}
    assert result["runs"]["batch_size/batch"]["batch_size"] == result["n_train"]
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    # measured on CPU: mini-batch 82.5% dev / 82.2% test, full batch 40.4% / 41.1% after 2 epochs
    assert 0.75 < result["runs"]["batch_size/minibatch"]["dev_accuracy"] < 0.92
    assert 0.75 < result["runs"]["batch_size/minibatch"]["test_accuracy"] < 0.92
    assert 0.25 < result["runs"]["batch_size/batch"]["dev_accuracy"] < 0.55
    # two full-batch steps against ~34 mini-batch steps: mini-batches learn far more per epoch
    assert result["runs"]["batch_size/minibatch"]["dev_accuracy"] > result["runs"]["batch_size/batch"]["dev_accuracy"]
    assert len(exp.plot(result, tmp_path)) == 1
