# Embeds the file IN as a C byte array named NAME (NUL-terminated, length without the NUL).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} */\nconst unsigned char ${NAME}[] = {${bytes}0x00};\nconst unsigned long ${NAME}_len = ${len};\n")
