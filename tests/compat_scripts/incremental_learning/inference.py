import json
import os
import time
import warnings

import numpy as np
from interface import Estimator
from sedna.common.config import Context
from sedna.core.incremental_learning import IncrementalLearning

he_saved_url = Context.get_parameters("HE_SAVED_URL")


def output_deal(is_hard_example, infer_result, nframe, label):
    # save the result of every frame, marked hard or not
    hard = 1 if is_hard_example else 0
    all_classes, all_scores = infer_result
    best = int(np.argmax(all_scores))
    record = {"frame": nframe, "prediction": int(all_classes[best]),
              "score": float(all_scores[best]), "label": label}
    with open(f"{he_saved_url}/{nframe}-{hard}.json", "w") as fout:
        json.dump(record, fout)


def mkdir(path):
    path = path.strip()
    path = path.rstrip()
    is_exists = os.path.exists(path)
    if not is_exists:
        os.makedirs(path)


def deal_infer_rsl(model_output):
    # one box covering the whole frame: [x1, y1, x2, y2, score, class]
    all_classes, all_scores = model_output
    best = int(np.argmax(all_scores))
    return [[0, 0, 8, 8, float(all_scores[best]), int(all_classes[best])]]


class VideoCapture:
    """The frames of a "video": an index of `<frame file> <label>` lines"""

    def __init__(self, video_url):
        root = os.path.dirname(video_url)
        with open(video_url) as fin:
            lines = [line.split() for line in fin if line.strip()]
        self.frames = iter([(np.load(os.path.join(root, path)), int(label))
                            for path, label in lines])

    def read(self):
        frame = next(self.frames, None)
        return frame is not None, frame


def run():
    camera_address = Context.get_parameters('video_url')

    input_shape_str = Context.get_parameters("input_shape")
    input_shape = tuple(int(v) for v in input_shape_str.split(","))
    mkdir(he_saved_url)
    # get hard exmaple mining algorithm from config
    hard_example_mining = IncrementalLearning.get_hem_algorithm_from_config(
        threshold_img=0.9
    )
    # create little model object
    model = IncrementalLearning(estimator=Estimator,
                                hard_example_mining=hard_example_mining)
    # use video streams for testing
    camera = VideoCapture(camera_address)
    fps = 10
    nframe = 0
    # the input of video stream
    while 1:
        ret, frame = camera.read()
        if not ret:
            time.sleep(1)
            camera = VideoCapture(camera_address)
            continue

        if nframe % fps:
            nframe += 1
            continue

        img, label = frame
        nframe += 1
        warnings.warn(f"camera is open, current frame index is {nframe}")
        results, _, is_hard_example = model.inference(
            img, post_process=deal_infer_rsl, input_shape=input_shape)
        output_deal(is_hard_example, results, nframe, label)


if __name__ == "__main__":
    run()
