import os

from interface import Estimator
from sedna.common.config import Context, BaseConfig
from sedna.datasources import TxtDataParse
from sedna.core.incremental_learning import IncrementalLearning


def _load_txt_dataset(dataset_url):

    # use original dataset url,
    # see https://github.com/kubeedge/sedna/issues/35
    original_dataset_url = Context.get_parameters('original_dataset_url')
    return os.path.join(os.path.dirname(original_dataset_url), dataset_url)


def main():
    class_names = Context.get_parameters("class_names")

    # load dataset.
    train_dataset_url = BaseConfig.train_dataset_url
    train_data = TxtDataParse(data_type="train", func=_load_txt_dataset)
    train_data.parse(train_dataset_url, use_raw=True)

    # read parameters from deployment config.
    input_shape = Context.get_parameters("input_shape")
    epochs = Context.get_parameters('epochs')
    batch_size = Context.get_parameters('batch_size')

    model = IncrementalLearning(estimator=Estimator)
    return model.train(train_data=train_data, epochs=epochs,
                       batch_size=batch_size,
                       class_names=class_names,
                       input_shape=input_shape,
                       max_epochs=epochs)


if __name__ == '__main__':
    main()
