import os

from sedna.common.config import Context
from sedna.core.incremental_learning import IncrementalLearning
from sedna.datasources import TxtDataParse
from interface import Estimator


def _load_txt_dataset(dataset_url):
    # use original dataset url,
    # see https://github.com/kubeedge/sedna/issues/35
    original_dataset_url = Context.get_parameters('original_dataset_url')
    return os.path.join(os.path.dirname(original_dataset_url), dataset_url)


def main():
    # load dataset.
    test_dataset_url = Context.get_parameters('test_dataset_url')

    valid_data = TxtDataParse(data_type="test", func=_load_txt_dataset)
    valid_data.parse(test_dataset_url, use_raw=True)

    # read parameters from deployment config.
    class_names = Context.get_parameters("class_names")
    class_names = [label.strip() for label in class_names.split(',')]
    input_shape = Context.get_parameters("input_shape")
    input_shape = tuple(int(shape) for shape in input_shape.split(','))

    model = IncrementalLearning(estimator=Estimator)
    return model.evaluate(valid_data, class_names=class_names,
                          input_shape=input_shape)


if __name__ == '__main__':
    main()
