import json
import logging
import os
import time

import numpy as np

from sedna.common.config import Context
from sedna.common.file_ops import FileOps
from sedna.core.joint_inference import JointInference
from sedna.datasources import TxtDataParse

from interface import Estimator


LOG = logging.getLogger(__name__)

camera_address = Context.get_parameters('video_url')

all_output_path = Context.get_parameters(
    'all_examples_inference_output'
)
hard_example_edge_output_path = Context.get_parameters(
    'hard_example_edge_inference_output'
)
hard_example_cloud_output_path = Context.get_parameters(
    'hard_example_cloud_inference_output'
)

FileOps.clean_folder([
    all_output_path,
    hard_example_cloud_output_path,
    hard_example_edge_output_path
], clean=False)


def frame_process(line):
    file_path, label = line.split(',')
    root_path = os.path.dirname(camera_address)
    frame = np.load(os.path.join(root_path, file_path))
    return [frame, int(label)]


def output_deal(
        final_result,
        is_hard_example,
        cloud_result,
        edge_result,
        nframe,
        label
):
    record = {"frame": nframe, "label": label,
              "prediction": int(np.argmax(final_result))}
    with open(f"{all_output_path}/{nframe}.json", "w") as fout:
        json.dump(record, fout)

    # save hard example results to dir
    if not is_hard_example:
        return

    if cloud_result is not None:
        with open(f"{hard_example_cloud_output_path}/{nframe}.json", "w") as fout:
            json.dump({"frame": nframe, "cloud": list(cloud_result)}, fout)
    with open(f"{hard_example_edge_output_path}/{nframe}.json", "w") as fout:
        json.dump({"frame": nframe, "edge": list(edge_result)}, fout)


def main():

    # get hard exmaple mining algorithm from config
    hard_example_mining = JointInference.get_hem_algorithm_from_config(
        threshold_cross_entropy=0.9
    )

    inference_instance = JointInference(
        estimator=Estimator,
        hard_example_mining=hard_example_mining
    )

    camera = TxtDataParse(data_type="eval", func=frame_process)
    frames = []
    nframe = 0
    while 1:
        if nframe >= len(frames):
            if not os.path.isfile(camera_address):
                LOG.info(
                    f"camera is not open, camera_address={camera_address},"
                    f" sleep 1 second.")
                time.sleep(1)
                continue
            camera.parse(camera_address)
            frames = list(zip(camera.x, camera.y))
            if nframe >= len(frames):
                time.sleep(1)
                continue

        frame, label = frames[nframe]
        nframe += 1
        LOG.info(f"current frame index is {nframe}")
        is_hard_example, final_result, edge_result, cloud_result = (
            inference_instance.inference(frame)
        )
        output_deal(
            final_result,
            is_hard_example,
            cloud_result,
            edge_result,
            nframe,
            int(label)
        )


if __name__ == '__main__':
    main()
