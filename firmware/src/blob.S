/* blob.S: the file named by BLOB_FILE, linked read-only into flash (.rodata),
 * 4-byte aligned, between the symbols flash_blob and flash_blob_end. */
    .section .rodata.flash_blob, "a", %progbits
    .balign 4
    .global flash_blob
    .global flash_blob_end
flash_blob:
    .incbin BLOB_FILE
flash_blob_end:
    .byte 0 /* keeps flash_blob_end inside the section for an empty file */
