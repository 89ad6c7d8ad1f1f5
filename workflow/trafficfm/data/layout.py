"""The organisers' file and folder names inside a release (config ``data.layout`` overrides them)."""

DEFAULT_LAYOUT = {
    "allinone": {
        "train_dir": "track1_train_data",
        "test_dir": "track1_test_data",
        "cls_list": "cls/{split}.txt",
        "cls_images": "cls/{split}",
        "det_json": "dec/{split}.json",
        "det_images": "dec/{split}",
        "det_test_list": "dec/test.txt",
        "seg_images": "seg/images/{split}",
        "seg_labels": "seg/label/{split}",
        "train_splits": ["train", "val"],
        "test_split": "test",
    },
    "retrieval": {
        "label_file": "{split}/{split}_label.txt",
        "images": "{split}/{split}_images",
        "test_queries": "test/test_text.txt",
        "test_images": "test/test_images",
        "train_splits": ["train", "val"],
    },
}
